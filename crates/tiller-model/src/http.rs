//! HTTP plumbing shared by the remote providers: the client, retries with backoff, and a
//! server-sent-events reader.
