"""Signup of new collaborators, from invitation to LDAP account (see docs/signup.md)."""
