# bench/chart.gnuplot - the chart of bench/run.sh --chart: requests/s and
# proxy CPU µs per request of the small keep-alive GET cases, one bar per
# proxy. Variables (gnuplot -e): rps, cpu (data files: a header line
# "case proxy1 proxy2 ...", then one line per case), out (PNG path), ncol
# (columns in the data files), subtitle.
set terminal pngcairo size 1200,520 font "sans,10"
set output out
set datafile missing "-"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key top left
set yrange [0:*]
set xtics nomirror rotate by -20
set multiplot layout 1,2 title "ringress, HAProxy and nginx, small GET (100 B) keep-alive: ".subtitle
set title "requests/s (higher is better)"
plot for [i=2:ncol] rps using i:xtic(1) title columnheader(i)
set title "proxy CPU µs per request (lower is better)"
plot for [i=2:ncol] cpu using i:xtic(1) title columnheader(i)
unset multiplot
