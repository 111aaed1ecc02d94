//! The run-worker function: the step queue's and the dead-letter queue's consumer. Wiring only;
//! the handler lives in tidemark-lambda.

use tidemark_lambda::worker::WorkerHandler;

/// See the workspace's Cargo.toml: bulk loads free row batches faster with mimalloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tidemark_lambda::init_logs();
    let service = tidemark_lambda::task_service_from_env().await?;
    let dead_letters = std::env::var("TIDEMARK_STEP_DEAD_LETTER_ARN").ok();
    tidemark_lambda::worker::serve(WorkerHandler::new(service, dead_letters)).await
}
