// libFuzzer target for the appliance importers: whatever the file, a parser and convert() must
// not crash, read out of bounds or hit undefined behaviour, and their results must keep the
// import's promises. One binary for the three parsers (they share the model and the config
// validator, the expensive part to build); IKELB_IMPORT_FUZZ_PARSER=f5|citrix|kemp picks one,
// and each has its own ctest smoke run and seed corpus.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "model.h"
#include "vendors.h"

namespace {

using namespace ikelb::appliance;

Parser g_parse = nullptr;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "import_fuzz: broken promise: %s\n", what);
    std::abort();
  }
}

void run(std::string_view text, const ImportOptions& options) {
  const std::string file = "fuzz.conf";
  const ApplianceConfig appliance = g_parse(text, file);
  const ImportResult result = convert(appliance, options);
  const size_t lines = 1 + static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
  for (const Finding& f : result.findings) {
    check(!f.message.empty(), "a finding without a message");
    check(f.where.line <= lines, "a finding past the last line");
    check(f.where.file.empty() || f.where.file == file, "a finding in another file");
  }
  // Never a silently partial config: written only when nothing unforced was found, and then
  // always valid.
  check(result.ok == !result.config_json.empty(), "ok and config_json disagree");
  if (result.ok) {
    for (const Finding& f : result.findings)
      check(f.severity != Severity::kFatal &&
                (f.severity != Severity::kProblem || options.force.contains(f.kind)),
            "ok despite an unforced problem");
    // convert() validated it already; checked again when everything is forced (the run most
    // likely to write something), not on every run, to keep the fuzzer fast.
    if (options.force.size() > 1)
      check(ikelb::parse_config(result.config_json).errors.empty(), "an invalid config written");
  }
  check(!format_report(result, appliance.vendor, options.force).empty(), "an empty report");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* parser = std::getenv("IKELB_IMPORT_FUZZ_PARSER");
  g_parse = parser_for(parser ? parser : "");
  if (!g_parse) {
    std::fprintf(stderr, "import_fuzz: set IKELB_IMPORT_FUZZ_PARSER to f5, citrix or kemp\n");
    std::exit(2);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  run(text, {});
  ImportOptions all;
  std::string error;
  parse_force("all", all.force, error);
  run(text, all);
  return 0;
}
