//! The `queue` bench (not written yet).

pub(crate) fn run(_args: &[String]) -> anyhow::Result<()> {
    anyhow::bail!("the queue bench is not written yet")
}
