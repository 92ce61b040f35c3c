"""Message contracts shared by every service: msgspec Structs, versioned, evolved additively."""
