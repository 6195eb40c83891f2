"""kvorumctl: etcdctl 3.4's v3 commands, flags, environment and output, byte for byte.

``printers`` renders protobuf responses in every ``--write-out`` format; ``flags`` parses the
command line and ``ETCDCTL_*`` as etcdctl does; ``commands`` holds the command tree; ``_conn``
is the gRPC client the commands use until ``kvorum.client`` replaces it.
"""
