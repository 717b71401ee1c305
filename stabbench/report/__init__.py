"""Results files, the leaderboard CSV, plots and the CI gate."""
