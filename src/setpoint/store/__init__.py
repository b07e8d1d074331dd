"""Where everything setpoint knows is kept: the metadata database and the artifact store."""
