"""HashiCorp Vault (or OpenBao) as the secret store, through hvac."""
