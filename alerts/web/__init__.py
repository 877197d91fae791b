"""Server-rendered pages: subscribe, confirm, manage, unsubscribe, and the development mailbox."""
