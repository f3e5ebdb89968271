"""The dashboard's pages, one module each: overview, the sessions list, a session, the actions, login."""
