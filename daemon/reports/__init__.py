"""Reports over the state database: where accounts stand and what dunning recovered."""
