// The command line (CLI11). Flag names are the Python tool's; each flag's text says what it does here.
#include <CLI/CLI.hpp>

#include "diffgentor/cli.hpp"

namespace dg {

namespace {

// CLI11 saturates an integer that does not fit its type; this check sees the text first, so
// "--seed 99999999999999999999" is refused instead of becoming 2^63-1.
std::string int64_text(const std::string& text) {
  try {
    std::size_t used = 0;
    (void)std::stoll(text, &used);
    if (used != text.size()) return "'" + text + "' is not an integer";
  } catch (const std::out_of_range&) {
    return "'" + text + "' is outside the 64-bit range (at most 9223372036854775807)";
  } catch (const std::exception&) {
    return "'" + text + "' is not an integer";
  }
  return "";
}

}  // namespace

namespace {

void add_edit_options(CLI::App& edit, EditOptions& o, bool& verbose) {
  const char* model = "Model";
  edit.add_option("--backend", o.backend, "Inference backend (only 'diffusers' in this build)")
      ->capture_default_str()
      ->group(model);
  edit.add_option("--model_name", o.model_name,
                  "Model bundle: a directory, a name under $DG_MODEL_ROOT, or a Hugging Face id in the HF cache")
      ->required()
      ->group(model);
  edit.add_option("--model_type", o.model_type,
                  "Model type (detected from --model_name when omitted): " + model_type_list())
      ->group(model);
  edit.add_option("--device", o.device, "auto, cpu, cuda or cuda:N (auto: CUDA when available, else CPU)")
      ->capture_default_str()
      ->group(model);
  edit.add_option(
          "--num_gpus", o.num_gpus,
          "Pipeline replicas, one per GPU, pulling from one queue (default: all GPUs with --device cuda, else 1)")
      ->group(model);
  edit.add_option("--seed", o.seed,
                  "Base seed: row seed = seed + index unless the row has a 'seed' column (default: random, logged and "
                  "recorded)")
      ->check(int64_text)
      ->group(model);

  const char* opt = "Optimization";
  edit.add_option("--torch_dtype", o.torch_dtype, "Weights dtype: bfloat16, float16 or float32 (must match the bundle)")
      ->capture_default_str()
      ->group(opt);
  edit.add_option("--attention_backend", o.attention_backend,
                  "flash, efficient, cudnn or math: the only kernel libtorch's scaled_dot_product_attention may use "
                  "(checked on the device at start-up; docs/performance.md, \"Attention kernels\")")
      ->group(opt);
  edit.add_flag("--enable_compile", o.enable_compile,
                "torch.compile (ignored: TorchScript is optimised by the JIT at load; freezing measured slower)")
      ->group(opt);
  edit.add_flag("--enable_cpu_offload", o.enable_cpu_offload,
                "CUDA only: each component waits in CPU memory and is on the GPU only while it runs "
                "(diffusers' enable_model_cpu_offload); rows report device_peak_mib")
      ->group(opt);
  edit.add_flag("--enable_vae_slicing", o.enable_vae_slicing,
                "With --batch_size above 1, the VAE encodes and decodes the batch's rows one at a time")
      ->group(opt);
  edit.add_flag("--enable_vae_tiling", o.enable_vae_tiling,
                "Encode and decode images larger than a VAE tile in overlapping, blended tiles (diffusers' "
                "enable_tiling)")
      ->group(opt);
  edit.add_option("--threads", o.threads, "CPU threads for libtorch (0 = all cores)")
      ->capture_default_str()
      ->group(opt);

  const char* io = "Input/Output";
  edit.add_option("--input", o.input, "Manifest: .csv (RFC 4180) or .jsonl")->required()->group(io);
  edit.add_option("--output_dir", o.output_dir, "Folder for edited images (and results.csv, failures.csv, logs/)")
      ->required()
      ->group(io);
  edit.add_option("--output_csv", o.output_csv, "Results file (default: <output_dir>/results.csv)")->group(io);
  edit.add_option("--output_name_column", o.output_name_column,
                  "Manifest column holding each row's output file name (default: {index:06d}.png)")
      ->group(io);
  edit.add_option("--output_format", o.output_format,
                  "png, jpg or webp for every output (the name's extension is changed to match); default: from "
                  "each output name, else png")
      ->check(CLI::IsMember({"png", "jpg", "webp"}))
      ->group(io);
  edit.add_option("--jpeg_quality", o.jpeg_quality, "JPEG quality, 1..100")->capture_default_str()->group(io);
  edit.add_option("--webp_quality", o.webp_quality, "WebP quality, 1..100 (lossy); default: lossless")->group(io);
  edit.add_flag_callback(
          "--no_metadata", [&o] { o.metadata = false; },
          "Do not embed the generation parameters in the images (PNG iTXt / EXIF UserComment `parameters`)")
      ->group(io);
  edit.add_option("--instruction_key", o.instruction_key, "Manifest column holding the instruction")
      ->capture_default_str()
      ->group(io);
  edit.add_option("--image_cache_dir", o.image_cache_dir, "Cache folder for downloaded http(s) input images")
      ->group(io);
  edit.add_option("--max_image_pixels", o.max_image_pixels,
                  "Reject input images with more pixels than this (decompression-bomb guard)")
      ->capture_default_str()
      ->group(io);
  edit.add_option("--download_timeout", o.download_timeout, "Seconds allowed for one image download")
      ->capture_default_str()
      ->group(io);
  edit.add_option("--download_retries", o.download_retries,
                  "Extra attempts for a failed download (timeouts, connection errors, 429, 5xx)")
      ->capture_default_str()
      ->group(io);
  edit.add_option("--prefetch", o.prefetch, "Rows prepared ahead of the model (and threads preparing them)")
      ->capture_default_str()
      ->group(io);

  const char* ed = "Editing";
  edit.add_option("--batch_size", o.batch_size,
                  "Rows run through the model together: rows with the same input sizes and settings share one "
                  "batched call per component (docs/batching.md)")
      ->capture_default_str()
      ->group(ed);
  edit.add_option("--cfg_batch", o.cfg_batch,
                  "fused: a row's conditional and unconditional branches in one batch-2 transformer call where their "
                  "inputs allow it; split: two calls; auto: split on the CPU (measured faster), fused on CUDA")
      ->check(CLI::IsMember({"auto", "fused", "split"}))
      ->capture_default_str()
      ->group(ed);
  edit.add_option("--num_inference_steps", o.num_inference_steps,
                  "Denoising steps (default: the model's, see `diffgentor models`)")
      ->group(ed);
  edit.add_option("--guidance_scale", o.guidance_scale, "Guidance scale (default: the model's; 0 is a value)")
      ->group(ed);
  edit.add_option("--true_cfg_scale", o.true_cfg_scale,
                  "True CFG scale: Qwen types default 4.0 (1 turns it off); FLUX.1-Kontext off unless > 1 with a "
                  "negative prompt")
      ->group(ed);
  edit.add_option("--negative_prompt", o.negative_prompt,
                  "Negative prompt (default: the model's; a row's 'negative_prompt' column wins)")
      ->group(ed);
  edit.add_option("--width", o.width,
                  "Output width in pixels, floored as the model's pipeline floors it (default: the model's rule from "
                  "the input; a row's 'width' column wins)")
      ->group(ed);
  edit.add_option("--height", o.height, "Output height in pixels (as --width)")->group(ed);
  edit.add_option("--lora", o.loras,
                  "FILE[:SCALE]: a LoRA (.safetensors) merged into the transformer at load, scale default 1 "
                  "(repeatable; docs/lora.md)")
      ->take_all()
      ->group(ed);
  edit.add_option("--model_option", o.model_options,
                  "NAME=VALUE: a setting of the model type (repeatable; `diffgentor models` lists each type's)")
      ->take_all()
      ->group(ed);

  const char* ex = "Execution";
  edit.add_option("--max_retries", o.max_retries, "Extra attempts for a row whose model call fails")
      ->capture_default_str()
      ->group(ex);
  edit.add_option("--grace_seconds", o.grace_seconds,
                  "After SIGINT/SIGTERM, seconds the rows in flight may take to finish before they are abandoned")
      ->capture_default_str()
      ->group(ex);
  edit.add_option("--filter_rows", o.filter_rows,
                  "Rows to run by index: '0:100', '5,7', '100:', ':50' (ranges are half-open)")
      ->group(ex);
  edit.add_flag("--resume", o.resume, "Skip rows whose output and record exist (default)")->group(ex);
  edit.add_flag_callback(
          "--no_resume", [&o] { o.resume = false; }, "Redo every selected row")
      ->group(ex);
  edit.add_flag("--dry_run", o.dry_run, "Read and check the manifest, print the plan, load nothing, write nothing")
      ->group(ex);
  edit.add_flag("-v,--verbose", verbose, "Debug logging")->group(ex);

  const char* pe = "Prompt enhancement";
  edit.add_option("--prompt_enhance_type", o.prompt_enhance_type,
                  "Rewrite each instruction with an LLM first: qwen_image_edit, glm_image or flux2 (API from the "
                  "DG_PROMPT_ENHANCER_* variables)")
      ->group(pe);
  edit.add_option("--enhance_workers", o.enhance_workers, "Enhancer requests in flight at once")
      ->capture_default_str()
      ->group(pe);
  edit.add_option("--timeout", o.timeout, "Seconds allowed for one enhancer API request")
      ->capture_default_str()
      ->group(pe);
  edit.add_option("--api_max_retries", o.api_max_retries, "Extra attempts for a failed enhancer API request")
      ->capture_default_str()
      ->group(pe);
  edit.add_option("--retry_delay", o.retry_delay, "First delay in seconds between API retries (doubles each time)")
      ->capture_default_str()
      ->group(pe);

  const char* di = "Distributed";
  edit.add_option("--node_rank", o.node_rank,
                  "This shard's rank (default: from RANK, SLURM_*, JOB_COMPLETION_INDEX, else 0)")
      ->group(di);
  edit.add_option("--num_nodes", o.num_nodes, "Number of shards (default: from WORLD_SIZE, SLURM_*, else 1)")
      ->group(di);

  edit.add_option("--log_dir", o.log_dir, "Folder for the log file (default: <output_dir>/logs)")->group("Logging");
  edit.add_option(
          "--progress", o.progress,
          "bar: the progress line on a terminal; jsonl: one JSON event per line on stdout (docs/batch-runner.md, "
          "\"Progress events\"); none")
      ->capture_default_str()
      ->check(CLI::IsMember({"bar", "jsonl", "none"}))
      ->group("Logging");
  edit.add_option("--progress_file", o.progress_file, "Append the JSON progress events to this file as well")
      ->group("Logging");
}

}  // namespace

std::optional<int> parse_command_line(int argc, char** argv, Command& cmd, const std::string& version_text) {
  CLI::App app{"diffgentor: bulk image editing with diffusion models (TorchScript bundles on libtorch)", "diffgentor"};
  app.set_version_flag("--version", version_text);
  app.require_subcommand(1);
  auto* models = app.add_subcommand("models", "List the supported model types, their name patterns and defaults");
  models->add_flag("--markdown", cmd.models_markdown, "Print the Markdown table of docs/models/README.md");
  auto* edit = app.add_subcommand("edit", "Edit every row of a manifest with a model");
  add_edit_options(*edit, cmd.edit, cmd.verbose);
  auto* tiny =
      app.add_subcommand("make-tiny", "Write a tiny bundle with seeded random weights (for smoke tests on CPU)");
  tiny->add_option("--model_type", cmd.tiny.model_type, "Model type: " + model_type_list(true))->required();
  tiny->add_option("--out", cmd.tiny.out, "Output folder (created)")->required();
  tiny->add_option("--size", cmd.tiny.size, "tiny (hidden 32) or small (hidden 256, for benchmarks)")
      ->capture_default_str()
      ->check(CLI::IsMember({"tiny", "small"}));
  tiny->add_option("--seed", cmd.tiny.seed, "Seed of the random weights")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  auto* tok = app.add_subcommand("tokenize", "Print the token ids of a text as a JSON list");
  tok->add_option("--model_name", cmd.tokenize.model_name, "Bundle whose tokenizer/tokenizer.json to use");
  tok->add_option("--tokenizer", cmd.tokenize.tokenizer, "A tokenizer.json file");
  tok->add_flag("--add_special_tokens", cmd.tokenize.add_special_tokens, "Apply the post-processor's special tokens");
  tok->add_flag("--decode", cmd.tokenize.decode,
                "Decode instead: the input is a JSON list of ids, the output the text as a JSON string");
  tok->add_flag("--skip_special_tokens", cmd.tokenize.skip_special_tokens, "With --decode: drop special tokens");
  tok->add_flag("--clean_up_tokenization_spaces", cmd.tokenize.clean_up_tokenization_spaces,
                "With --decode: apply transformers' clean_up_tokenization (\" .\" -> \".\" and the like)");
  tok->add_option("text", cmd.tokenize.text, "Text to tokenize, or with --decode the ids (default: standard input)");
  auto* merge = app.add_subcommand(
      "merge", "Join every shard's results and failures into results.csv / failures.csv and remove stale locks");
  merge->add_option("--output_dir", cmd.merge.output_dir, "The runs' output folder")->required();
  merge->add_option("--output_csv", cmd.merge.output_csv, "The runs' --output_csv, if they had one");
  auto* status = app.add_subcommand(
      "status", "Rows done, failed and pending per shard for an edit command line (nothing is loaded or written)");
  add_edit_options(*status, cmd.edit, cmd.verbose);
  auto* report = app.add_subcommand(
      "report", "Write an offline HTML page of a run: inputs beside outputs, instructions, failures, timings");
  report->add_option("--output_dir", cmd.report.output_dir, "The run's output folder")->required();
  report->add_option("--output_csv", cmd.report.output_csv, "The run's --output_csv, if it had one");
  report->add_option("--input", cmd.report.input,
                     "The run's manifest: adds the pending count, and failed rows' inputs and instructions");
  report->add_option("--instruction_key", cmd.report.instruction_key, "Instruction column")->capture_default_str();
  report->add_option("--out", cmd.report.out, "The page (default <output_dir>/report.html; thumbnails go beside it)");
  report->add_option("--limit", cmd.report.limit, "At most N cards, the first by index")->check(CLI::PositiveNumber);
  report->add_flag("--failed_only", cmd.report.failed_only, "Only the failed rows");
  auto* exp =
      app.add_subcommand("export",
                         "Export a diffusers checkpoint to a bundle: tools/export/export_bundle in the project's "
                         "Python environment; every argument goes to it (`diffgentor export --help`)");
  exp->prefix_command();
  exp->set_help_flag();  // --help goes to the exporter, which knows its flags
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  cmd.kind = *models   ? Command::Models
             : *tiny   ? Command::MakeTiny
             : *tok    ? Command::Tokenize
             : *merge  ? Command::Merge
             : *status ? Command::Status
             : *exp    ? Command::Export
             : *report ? Command::Report
                       : Command::Edit;
  if (*exp) cmd.export_args = exp->remaining();
  return std::nullopt;
}

}  // namespace dg
