"""Test doubles shared by the suites: loopback fakes of the upstreams and of an SMTP
server, and scripted source adapters."""
