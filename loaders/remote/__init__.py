"""Remote access: locations and URLs, the one HTTP client, the verified cache and its locks, range checks."""
