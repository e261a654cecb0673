"""Operator tools: explain, resend, test-send and pruning."""
