"""standby: a warm standby site for a Zimbra-style mailbox server."""

__version__ = "0.1.0"
