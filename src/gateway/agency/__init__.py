"""The register of agencies the gateway serves: codes, delivery, signature policy, certificates."""
