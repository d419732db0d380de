//! STUB for the i15-oidc branch: A's session.rs replaces it at merge.
//!
//! Only the one function the OIDC callback calls, with its types, so that branch builds and
//! its black-box tests run: no members, no stored sessions. The cookie it sets names the email.

use std::sync::Arc;

use axum::http::HeaderValue;

use crate::App;

/// What the IdP vouched for, after the ID token was validated.
pub(crate) struct IdpIdentity {
    #[allow(dead_code)] // A's real function records it.
    pub subject: String,
    pub email: String,
    pub email_verified: bool,
    #[allow(dead_code)]
    pub name: Option<String>,
}

/// Why a verified identity does not get a session.
#[allow(dead_code)] // `Disabled` and `Failed` come from A's real function.
pub(crate) enum SignInRefusal {
    EmailNotVerified,
    DomainNotAllowed,
    NotAMember,
    Disabled,
    Failed(String),
}

impl SignInRefusal {
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::EmailNotVerified => "email_not_verified",
            Self::DomainNotAllowed => "domain_not_allowed",
            Self::NotAMember => "not_a_member",
            Self::Disabled => "member_disabled",
            Self::Failed(_) => "sign_in_failed",
        }
    }

    pub(crate) fn message(&self) -> String {
        match self {
            Self::EmailNotVerified => {
                "your identity provider has not verified this email address".into()
            }
            Self::DomainNotAllowed => "accounts of this email domain may not sign in here".into(),
            Self::NotAMember => "this email address is not a member of this Mapline".into(),
            Self::Disabled => "this member is disabled".into(),
            Self::Failed(why) => format!("signing in failed: {why}"),
        }
    }
}

/// A member for a verified identity (an existing member by email, else — when the email's
/// domain is in `--oidc-allowed-domains` — a new `rep`), and a new session for them: the
/// `Set-Cookie` header value to send.
///
/// STUB: refuses unverified emails and emails outside the allowed domains; otherwise answers a
/// cookie `mapline_session=stub-<email>`.
pub(crate) async fn sign_in_with_idp(
    app: &Arc<App>,
    identity: IdpIdentity,
) -> Result<HeaderValue, SignInRefusal> {
    if !identity.email_verified {
        return Err(SignInRefusal::EmailNotVerified);
    }
    let domain = identity
        .email
        .rsplit_once('@')
        .map(|(_, domain)| domain.to_ascii_lowercase())
        .unwrap_or_default();
    if !app
        .config
        .oidc_allowed_domains
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(&domain))
    {
        return Err(SignInRefusal::DomainNotAllowed);
    }
    HeaderValue::from_str(&format!(
        "mapline_session=stub-{}; HttpOnly; SameSite=Lax; Path=/",
        identity.email
    ))
    .map_err(|e| SignInRefusal::Failed(e.to_string()))
}
