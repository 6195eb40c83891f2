"""kvorum: a distributed, reliable key-value store that speaks etcd v3."""

__version__ = "0.1.0"
