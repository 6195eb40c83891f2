"""Generated from kvorum/api/proto/v3electionpb; do not edit."""
