# The "lint" workflow of bench/vm_record_runs.sh: file names on stdin, one a line; a style pass
# (lines over 140 columns, trailing blanks, tab indents, TODO/FIXME) and an identifier index
# (identifier -> files it appears in), then the 20 most widespread identifiers. Only perl-base
# modules: the system-test VM has nothing more.
use strict;
use warnings;

my %index;
my ($lines, $long, $trailing, $tabs, $todo, $files) = (0) x 6;
while (my $name = <STDIN>) {
    chomp $name;
    open(my $in, '<', $name) or next;
    ++$files;
    while (my $line = <$in>) {
        ++$lines;
        ++$long if length($line) > 141;
        ++$trailing if $line =~ /[ \t]\r?\n\z/;
        ++$tabs if $line =~ /^\t/;
        ++$todo if $line =~ /\b(?:TODO|FIXME|XXX)\b/;
        $index{$1}{$name}++ while $line =~ /\b([A-Za-z_][A-Za-z0-9_]{2,})\b/g;
    }
    close $in;
}
my @widest = sort { keys %{ $index{$b} } <=> keys %{ $index{$a} } or $a cmp $b } keys %index;
printf "%d files, %d lines: %d over 140 columns, %d trailing blanks, %d tab-indented, %d TODO; %d identifiers\n",
    $files, $lines, $long, $trailing, $tabs, $todo, scalar @widest;
printf "  %-32s %d files\n", $_, scalar keys %{ $index{$_} } for @widest[0 .. ($#widest < 19 ? $#widest : 19)];
