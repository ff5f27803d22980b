//! conn (in progress)
