package sqlstore

// MigrationAttempts returns how many attempts at the migration d has
// started.
func MigrationAttempts(d *DB) int64 { return d.mig.attempts.Load() }
