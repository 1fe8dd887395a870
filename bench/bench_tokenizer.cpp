// bench_tokenizer.cpp — tokenizer load time and single-thread encode / decode throughput on a few MB of
// mixed text generated here (English-like prose, code, CJK, numbers, emoji, Cyrillic), so the figure
// needs no download. Prints the figures; it checks nothing except that decode(encode(text)) == text.
//
//   build/bench/bench_tokenizer [TOKENIZER_DIR] [MB]     (default: tests/data/tokenizer, run from the repository root; 4 MB)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "model/tokenizer.h"
#include "util/error.h"

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string mixed_text(size_t bytes, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const std::vector<std::string> words = {
      "the", "of", "and", "model", "attention", "expert", "token", "layer", "gradient", "compute", "memory",
      "latent", "routing", "DeepSeek", "inference", "throughput", "is", "a", "we", "that", "with", "for",
      "training", "language", "mixture", "parameters", "sequence", "benchmark", "performance", "results"};
  const std::vector<std::string> code = {
      "def forward(self, x):\n    return self.proj(x) + x\n", "for (int i = 0; i < n; ++i) {\n\ty[i] += a * x[i];\n}\n",
      "std::vector<float> out(n, 0.0f);\n", "if err != nil {\n\treturn nil, err\n}\n", "    # TODO: fuse\n",
      "{\"key\": [1, 2.5, null, true], \"name\": \"seek\"}\n"};
  const std::vector<std::string> cjk = {"深度求索", "你好，世界！", "模型训练", "我想在apple工作", "こんにちは世界",
                                        "안녕하세요", "注意力机制。", "参数"};
  const std::vector<std::string> other = {"Привет, мир! ", "🚀 ", "😶‍🌫️ ", "👍🏽 ", "✅ ", "مرحبا ", "नमस्ते "};
  std::string s;
  s.reserve(bytes + 256);
  auto pick = [&](const std::vector<std::string>& v) -> const std::string& { return v[rng() % v.size()]; };
  while (s.size() < bytes) {
    int kind = int(rng() % 10);
    if (kind < 5) {
      int n = 5 + int(rng() % 20);
      for (int i = 0; i < n; ++i) {
        // mostly common words, one in four a random letter string (so the word cache does not see it all)
        std::string w = pick(words);
        if (rng() % 4 == 0) {
          w.clear();
          for (int k = 2 + int(rng() % 9); k > 0; --k) w += char('a' + rng() % 26);
        }
        if (i == 0) w[0] = char(std::toupper(uint8_t(w[0])));
        s += w;
        s += i + 1 < n ? " " : ". ";
      }
      if (rng() % 4 == 0) s += "\n\n";
    } else if (kind < 7) {
      s += pick(code);
    } else if (kind < 8) {
      for (int i = 0; i < 4; ++i) s += pick(cjk);
    } else if (kind < 9) {
      s += std::to_string(rng() % 1000000) + "." + std::to_string(rng() % 100) + ", " + std::to_string(rng()) + " ";
    } else {
      s += pick(other);
    }
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : std::string("tests/data/tokenizer");
  double mb = argc > 2 ? std::atof(argv[2]) : 4.0;
  try {
    auto t0 = std::chrono::steady_clock::now();
    seek::Tokenizer tok = seek::Tokenizer::load(dir);
    double load_s = seconds_since(t0);
    std::printf("tokenizer        %s (vocab %lld)\n", dir.c_str(), (long long)tok.vocab_size());
    std::printf("load             %.3f s\n", load_s);

    std::string text = mixed_text(size_t(mb * 1e6), 42);
    // Cold: the BPE word cache starts empty; warm: a second pass over the same text.
    for (const char* pass : {"cold", "warm"}) {
      t0 = std::chrono::steady_clock::now();
      std::vector<int32_t> ids = tok.encode(text);
      double s = seconds_since(t0);
      std::printf("encode (%s)    %.2f MB in %.3f s = %.1f MB/s, %zu tokens (%.2f bytes/token)\n", pass,
                  text.size() / 1e6, s, text.size() / 1e6 / s, ids.size(), double(text.size()) / ids.size());
      if (std::string(pass) == "warm") {
        t0 = std::chrono::steady_clock::now();
        std::string back = tok.decode(ids);
        double ds = seconds_since(t0);
        std::printf("decode           %.1f MB/s, round trip %s\n", back.size() / 1e6 / ds, back == text ? "exact" : "DIFFERS");
        if (back != text) return 1;
      }
    }
  } catch (const seek::Error& e) {
    std::fprintf(stderr, "bench_tokenizer: %s\n", e.what());
    return 2;
  }
  return 0;
}
