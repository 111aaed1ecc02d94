//! The HTTP API end to end: the router on 127.0.0.1:0 in this process, the SQLite store, the
//! secrets file and the local scheduler in a temporary directory, the two MariaDB servers of the
//! stack, and a clock the tests move. Only loopback is allowed as an endpoint host.

mod api;
mod cancel;
mod errors;
mod firing;
mod helpers;
mod outages;
mod queued_precheck;
mod races;
