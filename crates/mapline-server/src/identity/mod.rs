//! Who is asking: credentials and principals ([`auth`]), member sessions, their cookie and the
//! CSRF and Origin checks ([`session`]), the seller team ([`members`]) and sign-in with the
//! company's OpenID Connect provider ([`oidc`]).

pub(crate) mod auth;
pub mod members;
pub(crate) mod oidc;
pub(crate) mod session;
