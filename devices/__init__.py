"""Who is out there: the device registry (issue 3) and the interface the gateway reads it through."""
