"""Generated from kvorum/api/proto/v3lockpb; do not edit."""
