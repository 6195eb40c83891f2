"""Generated from kvorum/api/proto/authpb; do not edit."""
