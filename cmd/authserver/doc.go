// Command authserver runs the QuanuX token server (serve) and its admin
// commands on the same database. It reads flags and AUTHSERVER_*
// environment variables, wires the packages together and holds no
// protocol logic.
package main
