"""prunegate's judging side: BBQ suite and scoring, bias statistics, benchmark harness, policy, reports."""

__version__ = "0.1.0"
