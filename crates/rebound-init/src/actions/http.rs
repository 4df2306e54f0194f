//! The HTTP client behind `init.wait_http`.

use super::wait_http::WaitHttp;
use super::{ActionContext, ActionError};

/// Polls the URL until it answers as expected.
pub(crate) async fn attempt(w: &WaitHttp, ctx: &ActionContext) -> Result<(), ActionError> {
    let _ = (w, ctx);
    Err(ActionError::permanent("init.wait_http is not built yet"))
}
