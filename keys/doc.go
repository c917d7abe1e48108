// Package keys owns the token signing keys: generation, encryption at rest
// under the master secret, rotation, the JWKS document and the fosite JWT
// signer. It persists keys through the [Store] it declares and must not
// import oauth/, legacy/, storage/ or cmd/.
package keys
