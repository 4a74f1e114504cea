//! The images a rendering needs, checked before a rollback puts it in
//! place: a generation whose image has since been removed would stop the
//! working container and leave its unit failing to start. Missing images
//! are pulled first unless the container says `pull = "never"`; one that
//! cannot be had refuses the rollback with nothing changed.

use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "{file} needs image {image}, which is not on this host and may not be pulled (Pull=never); nothing was changed"
    )]
    Missing { file: String, image: String },
    #[error("{file} needs image {image}, which is not on this host, and pulling it failed: {message}; nothing was changed")]
    Pull {
        file: String,
        image: String,
        message: String,
    },
}

/// `Image=` and `Pull=` of a rendered `.container` file (values unquoted).
/// An `Image=NAME.image` is no image reference but a Quadlet `.image` unit,
/// which pulls the image itself (with its own options) before the
/// container starts: `None` then, nothing to check or pull here.
fn image_and_pull(text: &str) -> (Option<String>, Option<String>) {
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().trim_matches('"').to_string())
    };
    let image = value("Image=").filter(|i| !(i.ends_with(".image") || i.ends_with(".build")));
    (image, value("Pull="))
}

/// Makes sure every image the `.container` files of `files` name is on
/// this host (as the agent's user sees it), pulling the missing ones
/// unless their `Pull=` is `never`.
pub async fn ensure(files: &BTreeMap<String, String>) -> Result<(), ImageError> {
    for (file, text) in files.iter().filter(|(f, _)| f.ends_with(".container")) {
        let (Some(image), pull) = image_and_pull(text) else {
            continue;
        };
        if podman(&["image", "exists", &image]).await.is_ok() {
            continue;
        }
        if pull.as_deref() == Some("never") {
            return Err(ImageError::Missing {
                file: file.clone(),
                image,
            });
        }
        tracing::info!("{file}: pulling {image} before the rollback");
        if let Err(message) = podman(&["pull", "--quiet", &image]).await {
            return Err(ImageError::Pull {
                file: file.clone(),
                image,
                message,
            });
        }
    }
    Ok(())
}

/// Runs podman; `Err` carries its last stderr line.
async fn podman(args: &[&str]) -> Result<(), String> {
    let out = tokio::process::Command::new("podman")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run podman: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("podman failed")
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_image_and_pull_from_a_rendered_file() {
        let text = "[Container]\nImage=docker.io/library/redis:7\nPull=\"never\"\n";
        assert_eq!(
            image_and_pull(text),
            (
                Some("docker.io/library/redis:7".into()),
                Some("never".into())
            )
        );
        assert_eq!(image_and_pull("[Unit]\n"), (None, None));
        assert_eq!(
            image_and_pull("[Container]\nImage=app.image\n"),
            (None, None)
        );
    }
}

/// A change held back because its image could not be pulled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub unit: String,
    pub image: String,
    pub message: String,
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: pulling {} failed: {}; the old container keeps running, the change was not applied",
            self.unit, self.image, self.message
        )
    }
}

/// Pulls, before any unit is stopped, the images that the containers
/// `plan` starts or restarts need and this host lacks (not those with
/// `Pull=never`), so the download is not downtime. A container whose image
/// cannot be pulled is taken out of `plan` and `desired` gets its old file
/// back (a new one is dropped): its old container keeps running, and the
/// next apply tries again. Progress and failures go to the journal.
pub async fn pull_ahead(
    plan: &mut crate::reconcile::Plan,
    desired: &mut BTreeMap<String, String>,
) -> Vec<Held> {
    let mut held = Vec::new();
    let starting: Vec<String> = plan
        .actions
        .iter()
        .filter(|a| a.kind != crate::reconcile::ActionKind::Stop)
        .map(|a| a.unit.clone())
        .collect();
    for unit in starting {
        let file = format!("{}.container", unit.trim_end_matches(".service"));
        let Some((Some(image), pull)) = desired.get(&file).map(|t| image_and_pull(t)) else {
            continue;
        };
        if pull.as_deref() == Some("never") || podman(&["image", "exists", &image]).await.is_ok() {
            continue;
        }
        if let Err(message) = pull_logged(&unit, &image).await {
            let h = Held {
                unit: unit.clone(),
                image,
                message,
            };
            tracing::error!(message_id = crate::journal::ids::PULL_FAILED, unit = %unit, "{h}");
            hold_back(plan, desired, &file, &unit);
            held.push(h);
        }
    }
    held
}

/// Takes `file`'s change and `unit`'s action out of the plan, and puts the
/// file as it is on disk back into `desired`.
fn hold_back(
    plan: &mut crate::reconcile::Plan,
    desired: &mut BTreeMap<String, String>,
    file: &str,
    unit: &str,
) {
    plan.actions.retain(|a| a.unit != unit);
    plan.add.retain(|f| f.name != file);
    match plan.change.iter().position(|f| f.name == file) {
        Some(i) => {
            let old = plan.change.remove(i).old.unwrap_or_default();
            desired.insert(file.to_string(), old);
        }
        None => {
            desired.remove(file);
        }
    }
}

/// `podman pull IMAGE`, its progress lines logged as they come.
async fn pull_logged(unit: &str, image: &str) -> Result<(), String> {
    use tokio::io::AsyncBufReadExt;
    let t0 = std::time::Instant::now();
    tracing::info!(unit = %unit, "pulling {image} before restarting {unit}");
    let mut child = tokio::process::Command::new("podman")
        .args(["pull", image])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run podman: {e}"))?;
    let mut last = String::new();
    if let Some(err) = child.stderr.take() {
        let mut lines = tokio::io::BufReader::new(err).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::info!(unit = %unit, "pull {image}: {line}");
            if !line.trim().is_empty() {
                last = line;
            }
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|e| format!("podman pull: {e}"))?;
    if status.success() {
        tracing::info!(unit = %unit, "pulled {image} in {:.1?}", t0.elapsed());
        Ok(())
    } else if last.is_empty() {
        Err(format!("podman pull exited with {status}"))
    } else {
        Err(last)
    }
}
