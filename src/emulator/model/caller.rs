//! Who a request acts for ([`Caller`]): the app and the user that JOB checks scopes,
//! confirm steps and operators against, once the HTTP face has checked credentials.

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `bk_app_code`.
    pub app_code: String,
    /// The user (`bk_username`, or the user behind a token).
    pub user: String,
}
