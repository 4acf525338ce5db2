// Package mysql captures row changes from MySQL 8 and MariaDB 10.11+ through
// the binary log (go-mysql-org/go-mysql), as a capture.Source.
package mysql
