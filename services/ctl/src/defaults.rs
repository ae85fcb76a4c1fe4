//! Where `rampartctl` looks for its server and token when not told: the
//! environment variables and the default address, shared by the flags
//! ([`crate::cli`]) and the commands that build addresses or hints.

/// Environment variable holding the server's API address.
pub const SERVER_ENV: &str = "RAMPART_SERVER";
/// Environment variable holding the API bearer token.
pub const TOKEN_ENV: &str = "RAMPART_TOKEN";
/// Where a server's API listens unless told otherwise (port 7073).
pub const DEFAULT_SERVER: &str = "https://127.0.0.1:7073";
/// The API port of a server whose address names none, as in [`DEFAULT_SERVER`].
pub const DEFAULT_PORT: u16 = 7073;
