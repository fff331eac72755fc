"""One folder per agency: its pure mapping to and from the contracts, its inbox and its commands."""
