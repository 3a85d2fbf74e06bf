"""The SOAP entrypoint: the published contract, spyne's service, and the gateway in front of it."""
