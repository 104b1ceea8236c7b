//! How a person signed in, in the words tokens carry: RFC 8176 method references (`amr`)
//! and the authentication context classes (`acr`) this server asserts.

/// RFC 8176 method references.
pub const AMR_PASSWORD: &str = "pwd";
pub const AMR_MFA: &str = "mfa";
pub const AMR_OTP: &str = "otp";
pub const AMR_BYPASS_CODE: &str = "bypass_code";
/// Authentication context classes this server asserts and accepts in `acr_values`.
pub const ACR_PASSWORD: &str = "urn:bypass-idp:acr:pwd";
pub const ACR_MFA: &str = "urn:bypass-idp:acr:mfa";
pub const ACR_VALUES: &[&str] = &[ACR_PASSWORD, ACR_MFA];

/// The acr a set of methods earns.
pub fn acr_for(amr: &[String]) -> &'static str {
    if amr.iter().any(|m| m == AMR_MFA) {
        ACR_MFA
    } else {
        ACR_PASSWORD
    }
}
