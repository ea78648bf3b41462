// Package api serves the registry's HTTP registration API: gateways subscribe names, ping and set
// ACME challenges, and owners verify emails and reclaim names, all stored through etcdstore.
package api
