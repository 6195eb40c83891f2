"""Generated from kvorum/api/proto/etcdserverpb; do not edit."""
