// Command resource-server is an example service that accepts the
// authorization server's access tokens through the verify package. It
// serves POST /api/foundry/forge, which requires the forge:write scope,
// checks the JSON body and echoes it with the caller's identity. It
// generates nothing.
package main
