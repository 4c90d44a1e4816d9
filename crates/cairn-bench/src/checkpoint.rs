//! The `checkpoint` bench (not written yet).

pub(crate) fn run(_args: &[String]) -> anyhow::Result<()> {
    anyhow::bail!("the checkpoint bench is not written yet")
}
