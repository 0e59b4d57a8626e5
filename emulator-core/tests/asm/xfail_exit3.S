/* Negative check of the harness: cases 1 and 2 pass, case 3 fails on purpose,
   so the program must end with status "fail" and exit code 3. */
#include "harness.h"
test_main:
  CASE 1
  li a0, 5
  EXPECT a0, 5
  CASE 2
  addi a0, a0, 1
  EXPECT a0, 6
  CASE 3
  addi a0, a0, 1
  EXPECT a0, 8           /* wrong on purpose */
  CASE 4
  PASS
