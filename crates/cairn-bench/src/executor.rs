//! The `executor` bench (not written yet).

pub(crate) fn run(_args: &[String]) -> anyhow::Result<()> {
    anyhow::bail!("the executor bench is not written yet")
}
