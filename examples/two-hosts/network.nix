# The addresses the two hosts reach each other on. Use a private network (a LAN of
# your own, or a WireGuard tunnel): the database connection is not encrypted unless you
# give PostgreSQL a certificate and beta's URL `?sslmode=verify-full`.
{
  # The interface alpha receives beta's database connections on.
  interface = "eth1";
  alpha = "10.10.0.1";
  beta = "10.10.0.2";
  databasePort = 5432;
}
