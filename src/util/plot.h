// plot.h — line charts as plain SVG 1.1 files, and a reader of JSON-lines metrics into columns.
//
// Written by hand (~300 lines) because no Debian C++ package draws SVG charts (gnuplot and matplotlib
// are programs, not libraries we could link), and a chart is a few hundred lines of text. The output
// is what GitHub renders inline: an <svg> with xmlns, width/height/viewBox, no scripts, no CSS, no
// external fonts (generic "sans-serif"), every text escaped.
//
//   plot::Chart c;
//   c.title = "loss"; c.x_label = "step"; c.y_label = "cross-entropy";
//   c.add_series("train", steps, losses);   // NaN in x or y = no point there: the line has a gap
//   c.write_svg("out/loss.svg");            // atomically (util/atomic_file.h)
//
// Axes: ticks are "nice" numbers (1, 2 or 5 × 10^k) whose first and last enclose every point; a
// constant series gets a range around its value. log_y draws y on a log10 scale (points with y <= 0
// are dropped like NaN). Several charts can be stacked in one file (write_svg(path, charts)).
//
// Does not: draw bars, scatter plots, a second y axis, dates, or pick ticks smarter than 1-2-5.
#pragma once
#include <cmath>
#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace seek::plot {

struct Series {
  std::string name;         // shown in the legend
  std::vector<double> x, y;  // same length; NaN = no point
  std::string color;        // "#rrggbb"; empty = the next colour of the palette
  bool dashed = false;
};

struct Chart {
  std::string title, x_label, y_label;
  bool log_y = false;
  double y_min = NAN;  // the y axis starts no lower than this when every point is at or above it
                       // (0 for counts: an all-zero series gets 0 .. 1, not -1 .. 1); NaN = no floor
  int width = 760, height = 400;  // pixels, legend included
  std::vector<Series> series;

  Series& add_series(std::string name, std::vector<double> x, std::vector<double> y);
  // The chart alone as an SVG document. Throws seek::Error when there is nothing to draw (no series,
  // or no finite point) or a series' x and y differ in length; the message names the chart and series.
  std::string svg() const;
  void write_svg(const std::string& path) const;
};

// Charts stacked top to bottom in one SVG document (each keeps its own size).
std::string render_svg(const std::vector<Chart>& charts);
void write_svg(const std::string& path, const std::vector<Chart>& charts);

// Ticks over [lo, hi]: a 1-2-5 step chosen for about `target` intervals, the first tick <= lo, the
// last >= hi, all multiples of the step. lo == hi is widened first. Requires finite lo <= hi.
std::vector<double> nice_ticks(double lo, double hi, int target = 6);
// Powers of ten enclosing [lo, hi] (lo > 0), with 2 and 5 between them when that spans one decade.
std::vector<double> log_ticks(double lo, double hi);

// A JSON-lines file as columns: one row per line, one column per numeric field. Nested objects and
// arrays are flattened with dots ({"a": {"b": 1}, "c": [2, 3]} gives "a.b", "c.0", "c.1"). A field a
// row lacks, null, or a non-number is NaN there; booleans are 0/1.
struct Columns {
  size_t rows = 0;
  std::map<std::string, std::vector<double>> col;  // each of length rows
  // The column, or all NaN when no row has the field.
  std::vector<double> get(const std::string& name) const;
  bool has(const std::string& name) const { return col.count(name) > 0; }
};
// Throws seek::Error naming the file and line for a line that is not a JSON object; a last line cut
// short (no final newline: a writer killed mid-line) is skipped. Blank lines are skipped.
Columns read_jsonl(const std::string& path);
// Keeps, for a key that should increase row by row (a step), only the rows that a later row does not
// supersede: after a run resumed from an earlier checkpoint, the re-done steps' rows win.
Columns drop_superseded(const Columns& c, const std::string& key);

}  // namespace seek::plot
