//! Loading what `run` and `check` both need besides the profile: the contact centre (queues
//! and agents) and the IVR flows with the names they may refer to.

use crate::acd::AcdConfig;
use crate::config::Profile;
use crate::ivr::{FlowError, Flows, Known};
use std::path::Path;

/// What flows may refer to: users and trunks of the profile, queues of the contact centre,
/// recorded prompts in `FLOWS/prompts/`.
pub fn flow_known(flows: &Path, profile: Option<&Profile>, acd: Option<&AcdConfig>) -> Known {
    let mut k = Known::default();
    if let Ok(dir) = std::fs::read_dir(flows.join("prompts")) {
        k.prompts = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
    }
    if let Some(p) = profile {
        k.users = p.users.iter().map(|u| u.extension.clone()).collect();
        k.trunks = p.trunks.iter().map(|t| t.name.clone()).collect();
    }
    if let Some(a) = acd {
        k.queues = a.queues.iter().map(|q| q.name.clone()).collect();
        k.callback_queues = a
            .queues
            .iter()
            .filter(|q| q.callback.is_some())
            .map(|q| q.name.clone())
            .collect();
    }
    k
}

/// Loads the contact-centre file; its errors as `file:line:col: message` lines.
pub fn load_contact_centre(path: &Path) -> Result<AcdConfig, Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("{}:1:1: cannot read: {e}", path.display())])?;
    AcdConfig::from_yaml(&path.display().to_string(), &text).map_err(|errors| {
        errors
            .iter()
            .map(|e| format!("{}:{}:{}: {}", e.file, e.line, e.col, e.message))
            .collect()
    })
}

/// Loads and validates every flow of `dir` against the profile and contact centre.
pub fn load_flows(
    dir: &Path,
    profile: Option<&Profile>,
    acd: Option<&AcdConfig>,
) -> (Flows, Vec<FlowError>) {
    crate::ivr::load_flows(dir, &flow_known(dir, profile, acd))
}
