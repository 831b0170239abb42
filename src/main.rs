#[tokio::main]
async fn main() -> anyhow::Result<()> {
    clinic::install_crypto_provider();
    clinic::cli::run().await
}
