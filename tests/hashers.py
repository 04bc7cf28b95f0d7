"""The suite's password hasher: Django's PBKDF2 with 1,000 iterations instead of 1,000,000.

Hashing a password costs 0.19 s on the 2-core box, and most tests create a person or two (and a browser test
signs one in): about four minutes of the suite went to key stretching. The hash keeps its algorithm name and
records its iteration count, so a console started as a separate process (real settings) still verifies it.
"""

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class FastPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1000
