"""What notifications decides without touching anything: which kinds there are, who hears
what on which channel and when, how texts read, how requests are signed, when to retry."""
