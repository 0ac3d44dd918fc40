//! The helper modes driven by the real clients (git 2.47 and 2.39, kubectl, docker, cargo,
//! sh), each against a loopback server that checks the Cognito token as a resource server
//! would, plus the protocol edges the clients do not reach (exit codes, bad input).

mod cargo;
mod docker;
mod fixture;
mod git;
mod kube;
mod misc;
