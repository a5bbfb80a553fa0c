"""Database roles: /dbrole check and provision, through each environment's role-manager Lambda."""
