"""Generated from kvorum/api/proto/mvccpb; do not edit."""
